"""Is the scan fit for the QIBA CT Lung Densitometry profile? Each condition it misses is a flag, never silence.

Lung densitometry reads absolute attenuation, so the acquisition changes the figures in a known direction:

- thick sections (SliceThickness (0018,0050)) average small air spaces with the parenchyma around them
  along z: RA-950 falls and Perc15 rises;
- a sharp (edge-enhancing, lung or bone) reconstruction kernel (ConvolutionKernel (0018,1210)) adds
  fine-scale noise and overshoot at every edge: normal lung is pushed below -950 HU and RA-950 rises,
  by several percentage points between a soft and a sharp kernel of one scan;
- noise measured in the image (the robust spread of the parenchyma's fine-scale residual on the series'
  own grid, `harmonise.fine_noise_hu`): whatever the kernel is called, or when a low dose makes a soft
  kernel noisy, noise spreads the histogram the same way; the flag's reason gives the share of normal
  parenchyma that noise alone pushes below the threshold (a normal distribution around the lung's median);
- IV contrast (ContrastBolusAgent (0018,0010) given) makes blood and perfused lung denser: RA-950 falls,
  Perc15 and the mean lung density rise.

Each check is a small pure function returning a `FitnessFlag` (the shared type: code, title, reason,
measured value, limit) or None. Codes start with "QIBA" so that they never share a code value with the
COVID-19 pipeline's flags of other meanings in the private SR scheme.
"""

from __future__ import annotations

import math
import re

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from scipy import ndimage

from dicom_node.pipeline.boxes import bounding_box
from dicom_node.pipeline.fitness import FitnessFlag
from dicom_node.pipeline.harmonise import fine_noise_hu
from dicom_node.pipeline.volume import CtVolume
from dicom_node.pipelines.lung_density.manifest import Acquisition
from dicom_node.pipelines.lung_density.settings import QibaRules

KERNEL_NUMBER = re.compile(r"^[A-Z]{1,3}(\d{2})")  # B70f, Br64d, I50f, FC51: the vendor's sharpness number
PARENCHYMA_HU = (-950.0, -600.0)  # lung voxels of this range (after a 3 x 3 mean) are parenchyma for the noise
SOFT_KERNEL_NAMES = frozenset({"STANDARD", "SOFT", "A", "B", "C"})  # GE, Philips
NOISE_REGION_EROSION = 5  # voxels in-plane: the lung's rim and the vessels' edges stay out of the noise


def read_acquisition(volume: CtVolume, labels: np.ndarray) -> Acquisition:
    """The series' first header and its lung parenchyma (`labels` on the native grid) as an `Acquisition`."""
    header = next((h for h in volume.source_headers if h is not None), None)
    thickness, source = _header_float(header, "SliceThickness"), "SliceThickness (0018,0050)"
    if thickness is None or thickness <= 0:
        thickness, source = float(volume.spacing[0]), "the slice spacing (no SliceThickness)"
    noise, median = parenchymal_noise_hu(volume.hu, labels, volume.spacing)
    return Acquisition(
        kernel=_text(header, "ConvolutionKernel"),
        slice_thickness_mm=thickness,
        thickness_source=source,
        contrast_agent=_text(header, "ContrastBolusAgent"),
        noise_hu=round(noise, 2),
        parenchyma_median_hu=round(median, 1),
    )


def fitness_flags(acquisition: Acquisition, rules: QibaRules, threshold_hu: int) -> tuple[FitnessFlag, ...]:
    """A flag for each condition of the acquisition outside the profile; empty: fit."""
    found = (
        slice_thickness_flag(acquisition, rules),
        sharp_kernel_flag(acquisition, rules),
        noise_flag(acquisition, rules, threshold_hu),
        contrast_flag(acquisition),
    )
    return tuple(flag for flag in found if flag is not None)


def kernel_is_sharp(kernel: str, rules: QibaRules) -> bool | None:
    """True for a sharp kernel, False for a soft or standard one, None when the name says nothing known."""
    name = kernel.split("\\")[0].strip().upper()
    if not name:
        return None
    number = KERNEL_NUMBER.match(name)
    if number:
        return int(number.group(1)) >= rules.sharp_kernel_number
    if name in {n.upper() for n in rules.sharp_kernel_names}:
        return True
    return False if name in SOFT_KERNEL_NAMES else None


def slice_thickness_flag(acquisition: Acquisition, rules: QibaRules) -> FitnessFlag | None:
    thickness = acquisition.slice_thickness_mm
    if thickness <= rules.max_slice_thickness_mm:
        return None
    return FitnessFlag(
        "QIBATHICK",
        "Sections thicker than lung densitometry asks for",
        f"sections of {thickness:g} mm ({acquisition.thickness_source}), at most {rules.max_slice_thickness_mm:g} mm "
        "for lung densitometry: partial volume along z averages air spaces with the parenchyma, so RA-950 reads low "
        "and Perc15 high",
        thickness,
        rules.max_slice_thickness_mm,
        "mm",
    )


def sharp_kernel_flag(acquisition: Acquisition, rules: QibaRules) -> FitnessFlag | None:
    if not kernel_is_sharp(acquisition.kernel, rules):
        return None
    return FitnessFlag(
        "QIBAKERNEL",
        "Sharp reconstruction kernel",
        f"ConvolutionKernel (0018,1210) is {acquisition.kernel}, a sharp (lung or bone) kernel: its noise and edge "
        "overshoot push normal lung below -950 HU, so RA-950 reads high and Perc15 low; densitometry needs a soft "
        "or standard kernel",
        1.0,
        0.0,
        "{sharp kernel}",
    )


def noise_flag(acquisition: Acquisition, rules: QibaRules, threshold_hu: int) -> FitnessFlag | None:
    noise, median = acquisition.noise_hu, acquisition.parenchyma_median_hu
    if noise <= rules.max_noise_hu or median is None:
        return None
    pushed = 100.0 * 0.5 * math.erfc((median - threshold_hu) / (noise * math.sqrt(2.0)))
    return FitnessFlag(
        "QIBANOISE",
        "Noisy lung parenchyma",
        f"the lung parenchyma's fine-scale noise is {noise:.1f} HU on the series' own grid, above "
        f"{rules.max_noise_hu:g} HU: around its median of {median:.0f} HU noise alone puts about {pushed:.1f}% of "
        f"normal lung below {threshold_hu} HU, so RA-950 reads high and Perc15 low (a sharp kernel or a low dose)",
        noise,
        rules.max_noise_hu,
        "[hnsf'U]",
    )


def contrast_flag(acquisition: Acquisition) -> FitnessFlag | None:
    if not acquisition.contrast_agent:
        return None
    return FitnessFlag(
        "QIBACONTRAST",
        "IV contrast given",
        f"ContrastBolusAgent (0018,0010) is {acquisition.contrast_agent!r}: contrast makes blood and perfused lung "
        "denser, so RA-950 reads low and Perc15 and the mean lung density high; densitometry asks for a scan "
        "without contrast",
        1.0,
        0.0,
        "{contrast}",
    )


def parenchymal_noise_hu(hu: np.ndarray, labels: np.ndarray, spacing: tuple[float, float, float]) -> tuple[float, float]:
    """(fine-scale noise, median attenuation) of the lung parenchyma on the series' own grid, in HU.

    Parenchyma: lung voxels away from the lung's rim whose 3 x 3 in-plane mean lies in `PARENCHYMA_HU`
    (not vessels, not large air spaces). Works in the lungs' bounding box only; (0, NaN) without parenchyma.
    """
    box = bounding_box(labels)
    if box is None:
        return 0.0, float("nan")
    image = hu[box].astype(np.float32)
    core = ndimage.binary_erosion(labels[box] > 0, np.ones((1, NOISE_REGION_EROSION, NOISE_REGION_EROSION), dtype=bool))
    mean = ndimage.uniform_filter(image, (1, 3, 3))
    parenchyma = core & (mean > PARENCHYMA_HU[0]) & (mean < PARENCHYMA_HU[1])
    if not parenchyma.any():
        return 0.0, float("nan")
    return fine_noise_hu(image, parenchyma, spacing), float(np.median(image[parenchyma]))


def _text(header: Dataset | None, keyword: str) -> str:
    """An attribute as DICOM writes it (values joined by a backslash), stripped; empty when absent."""
    value = header.get(keyword, "") if header is not None else ""
    return ("\\".join(str(v) for v in value) if isinstance(value, MultiValue) else str(value or "")).strip()


def _header_float(header: Dataset | None, keyword: str) -> float | None:
    try:
        number = float(header.get(keyword))  # type: ignore[arg-type, union-attr]
    except (AttributeError, TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
