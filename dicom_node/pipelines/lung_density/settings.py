"""Settings of the lung-density pipeline: the shared loading and segmentation rules, the density
thresholds and the limits of the QIBA CT Lung Densitometry profile's conditions it checks.

Pydantic models, so that the node's configuration can nest them (`[pipelines.lung_density.processing]`)
and validate what a file gives; the pipeline's functions only read them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from dicom_node.pipeline.settings import ProcessingSettings, SegmentationSettings

# Reconstruction kernels that sharpen edges, by vendor naming (ConvolutionKernel (0018,1210)):
# Siemens numbers its kernels by sharpness (B/Br/I/Q + number; 50 and above are the lung and bone kernels),
# GE, Philips and Canon name theirs. Soft and standard kernels are what densitometry is calibrated on.
SHARP_KERNEL_NAMES = ("LUNG", "BONE", "BONEPLUS", "EDGE", "SHARP", "DETAIL", "YA", "YB", "YC", "YD", "L", "D", "E")


class QibaRules(BaseModel, frozen=True):
    """When a scan is outside the acquisition the QIBA CT Lung Densitometry profile asks for (each raises a flag)."""

    max_slice_thickness_mm: float = Field(
        1.5, gt=0, description="thicker sections average air spaces with parenchyma along z: RA-950 falls, Perc15 rises"
    )
    sharp_kernel_number: int = Field(
        50, ge=1, description="Siemens-style kernels (B70f, Br64, I50f) numbered at least this are sharp (lung, bone)"
    )
    sharp_kernel_names: tuple[str, ...] = Field(
        SHARP_KERNEL_NAMES, description="named kernels (GE, Philips, Canon) that are sharp, compared case-insensitively"
    )
    max_noise_hu: float = Field(
        40.0, gt=0, description="fine-scale noise of the lung parenchyma on the series' own grid above which noise is "
        "reported: it spreads the histogram and pushes normal lung below -950 HU (30-38 HU measured on the shared "
        "soft and standard kernels, 58 HU on B70f)"
    )


class LungDensitySettings(ProcessingSettings, frozen=True):
    """Everything the lung-density pipeline reads (`[pipelines.lung_density.processing]`): selection, loading and
    segmentation are the shared steps' own settings."""

    segmentation: SegmentationSettings = SegmentationSettings()
    threshold_hu: int = Field(-950, le=-500, ge=-1024, description="RA: voxels strictly below this count as low attenuation")
    percentile: float = Field(15.0, gt=0, lt=100, description="the percentile of the lung histogram reported (Perc15)")
    qiba: QibaRules = QibaRules()
