"""Synthetic chest CT phantoms with known lung, airway and opacity masks, written as DICOM series.

Real CT data come without voxel-level truth; these phantoms give exact answers for the
segmentation (Dice), the quantification (PO) and the load checks, at any size. The
anatomy is deliberately simple but has what makes lung segmentation hard: a body with
fat, muscle, ribs and spine, a trachea and main bronchi, a domed diaphragm, vessels
running from the hilum, noise and mild blur, and opacities (ground glass and
consolidation) placed preferentially at the lung periphery, where COVID-19 lesions sit
and where a plain air threshold loses dense lung.

Coordinates are LPS in mm with the volume centred on (0, 0, 0); patient right is -x.

CLI: ``python -m phantoms.chest OUT_DIR --size 512 512 300 --opacity 0.1``
(size is columns rows slices).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid
from scipy import ndimage

# Tissue classes of the label map, and their mean HU. Vessels of the branching tree and
# ground-glass nodules take one of several attenuation levels (labels from VESSEL_LEVELS[0]
# and NODULE_LEVELS[0] on): -50 to +80 HU (blood, partial volume of thin vessels) and
# -650 to -500 HU (faint to moderate ground glass).
AIR, FAT, SOFT, BONE, LUNG, AIRWAY, VESSEL, GROUND_GLASS, CONSOLIDATION = range(9)
VESSEL_HU = (-50.0, 0.0, 40.0, 80.0)
NODULE_HU = (-650.0, -600.0, -550.0, -500.0)
VESSEL_LEVELS = tuple(range(9, 9 + len(VESSEL_HU)))
NODULE_LEVELS = tuple(range(VESSEL_LEVELS[-1] + 1, VESSEL_LEVELS[-1] + 1 + len(NODULE_HU)))
TISSUE_HU = np.array([-1000, -100, 40, 700, -860, -1000, 40, -550, 20, *VESSEL_HU, *NODULE_HU], dtype=np.float32)

# Reconstruction kernels: in-plane blur (voxels), noise (HU) and edge enhancement (unsharp
# amount). A sharp kernel is noisier and overshoots at edges; a soft one blurs small vessels
# into their surroundings. "standard" is what the phantom always had.
KERNELS = {"standard": (0.6, 15.0, 0.0), "soft": (1.1, 8.0, 0.0), "sharp": (0.5, 40.0, 0.8)}

LUNG_CENTRES_X = {1: -80.0, 2: 80.0}  # 1 right lung (patient right = -x), 2 left lung
LUNG_SEMI_AXES = (58.0, 85.0, 120.0)  # x, y, z in mm
LUNG_CENTRE_YZ = (5.0, 15.0)
HILUM = {1: (-38.0, 0.0, 40.0), 2: (38.0, 0.0, 35.0)}
CARINA = (0.0, -10.0, 60.0)


@dataclass(frozen=True)
class Phantom:
    """A synthetic CT: `hu` int16 (z, y, x) and its truth masks on the same grid."""

    hu: np.ndarray
    spacing: tuple[float, float, float]  # (z, y, x) mm
    origin: tuple[float, float, float]  # (z, y, x) LPS of voxel [0, 0, 0]
    lungs: np.ndarray  # uint8: 0 background, 1 right lung, 2 left lung
    airway: np.ndarray  # bool: trachea and main bronchi outside the lungs
    opacity: np.ndarray  # bool: ground glass or consolidation, within the lungs
    consolidation: np.ndarray  # bool: the consolidation part of `opacity`
    body: np.ndarray  # bool: inside the skin
    vessels: np.ndarray | None = None  # bool: vessels inside the lungs (not under a lesion)

    @property
    def opacity_percent(self) -> float:
        return 100.0 * float(self.opacity.sum()) / float((self.lungs > 0).sum())


def make_phantom(
    size_xyz: tuple[int, int, int] = (256, 256, 80),
    opacity_fraction: float = 0.0,
    *,
    seed: int = 0,
    field_of_view_mm: float = 360.0,
    z_extent_mm: float = 300.0,
    noise_hu: float | None = None,
    n_vessels_per_lung: int = 30,
    consolidation_share: float = 0.3,
    vessel_tree: bool = False,
    ground_glass_nodules: int = 0,
    kernel: str = "standard",
) -> Phantom:
    """Build a chest phantom; `opacity_fraction` of each lung's volume is covered by lesions.

    `vessel_tree` replaces the straight vessels by `n_vessels_per_lung` branching trees
    (diameters 6 mm at the hilum down to 1 mm, -50 to +80 HU); `ground_glass_nodules`
    adds that many round ground-glass nodules per lung (8-30 mm, -650 to -500 HU) anywhere
    in the lung; `kernel` ("standard", "soft", "sharp") sets blur, noise and edge
    enhancement (`noise_hu` overrides the kernel's noise).
    """
    nx, ny, nz = size_xyz
    spacing = (z_extent_mm / nz, field_of_view_mm / ny, field_of_view_mm / nx)
    origin = tuple(-(n - 1) * s / 2.0 for n, s in zip((nz, ny, nx), spacing))
    rng = np.random.default_rng(seed)
    z, y, x = _axes((nz, ny, nx), spacing, origin)

    labels = np.full((nz, ny, nx), AIR, dtype=np.uint8)
    body = ((x / 165.0) ** 2 + ((y - 5) / 120.0) ** 2 <= 1.0) & np.ones_like(z, dtype=bool)
    labels[body] = FAT
    labels[((x / 153.0) ** 2 + ((y - 5) / 108.0) ** 2 <= 1.0) & np.ones_like(z, dtype=bool)] = SOFT
    ribs = (
        ((x / 150.0) ** 2 + ((y - 5) / 105.0) ** 2 <= 1.0)
        & ((x / 142.0) ** 2 + ((y - 5) / 97.0) ** 2 > 1.0)
        & (np.abs(((z + 300.0) % 28.0) - 14.0) < 5.0)
        & (y > -70.0)
    )
    labels[ribs] = BONE
    labels[((x**2 + (y - 88.0) ** 2) <= 18.0**2) & np.ones_like(z, dtype=bool)] = BONE

    lungs = np.zeros((nz, ny, nx), dtype=np.uint8)
    for label, cx in LUNG_CENTRES_X.items():
        lungs[_lung_shape(z, y, x, cx)] = label
    labels[lungs > 0] = LUNG

    airway = np.zeros_like(body)
    _paint_tube(airway, (0.0, -10.0, 200.0), CARINA, 9.0, spacing, origin)
    for label in LUNG_CENTRES_X:
        _paint_tube(airway, CARINA, HILUM[label], 6.0, spacing, origin)
    labels[airway] = AIRWAY
    airway &= lungs == 0

    for label in LUNG_CENTRES_X:
        segments = _vessel_tree(label, n_vessels_per_lung, rng) if vessel_tree else _vessel_segments(label, n_vessels_per_lung, rng)
        for start, end, radius in segments:
            vessel = np.zeros_like(body)
            box = _paint_tube(vessel, start, end, radius, spacing, origin)
            tissue = VESSEL_LEVELS[rng.integers(len(VESSEL_LEVELS))] if vessel_tree else VESSEL
            labels[box][vessel[box] & (lungs[box] == label)] = tissue

    opacity = np.zeros_like(body)
    consolidation = np.zeros_like(body)
    if opacity_fraction > 0:
        for label in LUNG_CENTRES_X:
            _place_lesions(
                labels, lungs, label, opacity, consolidation, opacity_fraction, consolidation_share, spacing, origin, rng
            )
    for label in LUNG_CENTRES_X:
        for _ in range(ground_glass_nodules):
            _place_nodule(labels, lungs, label, opacity, spacing, origin, rng)

    blur, kernel_noise, sharpen = KERNELS[kernel]
    hu = _render(labels, spacing, kernel_noise if noise_hu is None else noise_hu, rng, blur, sharpen)
    vessels = ((labels == VESSEL) | np.isin(labels, VESSEL_LEVELS)) & (lungs > 0)
    return Phantom(hu, spacing, origin, lungs, airway, opacity, consolidation, body, vessels)


def _axes(shape: tuple[int, int, int], spacing, origin) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable z, y, x coordinate arrays (mm)."""
    return tuple(  # type: ignore[return-value]
        (o + s * np.arange(n, dtype=np.float32)).reshape([-1 if i == k else 1 for i in range(3)])
        for k, (n, s, o) in enumerate(zip(shape, spacing, origin))
    )


def _lung_shape(z: np.ndarray, y: np.ndarray, x: np.ndarray, cx: float) -> np.ndarray:
    """Half-ellipsoid lung with a domed diaphragm pushing its base upwards."""
    ax, ay, az = LUNG_SEMI_AXES
    cy, cz = LUNG_CENTRE_YZ
    rho2 = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2
    diaphragm = cz - 0.85 * az + 40.0 * np.clip(1.0 - rho2, 0.0, None)
    return (rho2 + ((z - cz) / az) ** 2 <= 1.0) & (z > diaphragm)


def _paint_tube(mask: np.ndarray, start, end, radius: float, spacing, origin) -> tuple[slice, slice, slice]:
    """Set voxels within `radius` mm of the segment start-end (LPS x, y, z); returns the touched box."""
    p0 = np.array(start[::-1], dtype=np.float32)  # to (z, y, x)
    p1 = np.array(end[::-1], dtype=np.float32)
    lo = np.minimum(p0, p1) - radius
    hi = np.maximum(p0, p1) + radius
    sp, org = np.asarray(spacing), np.asarray(origin)
    i0 = np.clip(np.floor((lo - org) / sp).astype(int), 0, mask.shape)
    i1 = np.clip(np.ceil((hi - org) / sp).astype(int) + 1, 0, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(i0, i1))
    if any(b <= a for a, b in zip(i0, i1)):
        return box  # type: ignore[return-value]
    z, y, x = (org[k] + sp[k] * np.arange(i0[k], i1[k], dtype=np.float32) for k in range(3))
    pz, py, px = z[:, None, None], y[None, :, None], x[None, None, :]
    d = p1 - p0
    t = ((pz - p0[0]) * d[0] + (py - p0[1]) * d[1] + (px - p0[2]) * d[2]) / max(float(d @ d), 1e-6)
    t = np.clip(t, 0.0, 1.0)
    dist2 = (pz - p0[0] - t * d[0]) ** 2 + (py - p0[1] - t * d[1]) ** 2 + (px - p0[2] - t * d[2]) ** 2
    mask[box] |= dist2 <= radius**2
    return box  # type: ignore[return-value]


def _vessel_segments(label: int, count: int, rng: np.random.Generator) -> Iterator[tuple[tuple, tuple, float]]:
    """Vessels radiating from the hilum towards the periphery, thinner further out."""
    ax, ay, az = LUNG_SEMI_AXES
    cy, cz = LUNG_CENTRE_YZ
    hilum = HILUM[label]
    for _ in range(count):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        reach = rng.uniform(0.5, 0.85)
        end = (
            LUNG_CENTRES_X[label] + direction[0] * ax * reach,
            cy + direction[1] * ay * reach,
            cz + direction[2] * az * reach,
        )
        radius = float(rng.uniform(1.0, 3.5))
        yield hilum, end, radius


def _vessel_tree(label: int, count: int, rng: np.random.Generator) -> Iterator[tuple[tuple, tuple, float]]:
    """`count` trees from the hilum: a 3 mm radius trunk that forks twice per level, the
    radius shrinking by 0.6 per level down to 0.5 mm (1 mm diameter), segments 15-30 mm."""
    ax, ay, az = LUNG_SEMI_AXES
    cy, cz = LUNG_CENTRE_YZ
    centre = np.array([LUNG_CENTRES_X[label], cy, cz])
    for _ in range(count):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        branches = [(np.array(HILUM[label]), direction, 3.0)]
        while branches:
            start, heading, radius = branches.pop()
            end = start + heading * rng.uniform(15.0, 30.0)
            if np.sum(((end - centre) / np.array([ax, ay, az])) ** 2) > 1.0:  # ends outside the lung: prune
                continue
            yield tuple(start), tuple(end), radius
            if radius * 0.6 >= 0.5:
                for _ in range(2):
                    turn = heading + rng.normal(scale=0.5, size=3)
                    branches.append((end, turn / np.linalg.norm(turn), radius * 0.6))


def _place_nodule(
    labels: np.ndarray, lungs: np.ndarray, label: int, opacity: np.ndarray, spacing, origin, rng: np.random.Generator
) -> None:
    """One round ground-glass nodule, 8-30 mm across, at a random place well inside the lung."""
    ax, ay, az = LUNG_SEMI_AXES
    cy, cz = LUNG_CENTRE_YZ
    radius = rng.uniform(4.0, 15.0)
    while True:
        offset = rng.uniform(-0.7, 0.7, size=3) * np.array([az, ay, ax])
        centre = np.array([cz, cy, LUNG_CENTRES_X[label]]) + offset
        if _lung_shape(np.float32(centre[0] - radius), np.float32(centre[1]), np.float32(centre[2]), LUNG_CENTRES_X[label]):
            break
    sp, org = np.asarray(spacing), np.asarray(origin)
    i0 = np.clip(np.floor((centre - radius - org) / sp).astype(int), 0, lungs.shape)
    i1 = np.clip(np.ceil((centre + radius - org) / sp).astype(int) + 1, 0, lungs.shape)
    box = tuple(slice(a, b) for a, b in zip(i0, i1))
    z, y, x = (org[k] + sp[k] * np.arange(i0[k], i1[k]) for k in range(3))
    ball = (
        (z[:, None, None] - centre[0]) ** 2 + (y[None, :, None] - centre[1]) ** 2 + (x[None, None, :] - centre[2]) ** 2
        <= radius**2
    ) & (lungs[box] == label)
    labels[box][ball] = NODULE_LEVELS[rng.integers(len(NODULE_LEVELS))]
    opacity[box] |= ball


def _place_lesions(
    labels: np.ndarray,
    lungs: np.ndarray,
    label: int,
    opacity: np.ndarray,
    consolidation: np.ndarray,
    fraction: float,
    consolidation_share: float,
    spacing,
    origin,
    rng: np.random.Generator,
) -> None:
    """Add ellipsoidal lesions centred near the pleura until `fraction` of the lung is covered."""
    lung_voxels = int((lungs == label).sum())
    target = fraction * lung_voxels
    sp, org = np.asarray(spacing), np.asarray(origin)
    covered = 0
    for centre in _subpleural_points(label, rng):
        if covered >= target:
            break
        radii = rng.uniform(8.0, 22.0, size=3)
        i0 = np.clip(np.floor((centre - radii - org) / sp).astype(int), 0, lungs.shape)
        i1 = np.clip(np.ceil((centre + radii - org) / sp).astype(int) + 1, 0, lungs.shape)
        box = tuple(slice(a, b) for a, b in zip(i0, i1))
        z, y, x = (org[k] + sp[k] * np.arange(i0[k], i1[k]) for k in range(3))
        blob = (
            ((z[:, None, None] - centre[0]) / radii[0]) ** 2
            + ((y[None, :, None] - centre[1]) / radii[1]) ** 2
            + ((x[None, None, :] - centre[2]) / radii[2]) ** 2
            <= 1.0
        ) & (lungs[box] == label) & ~opacity[box]
        is_consolidation = rng.uniform() < consolidation_share
        labels[box][blob] = CONSOLIDATION if is_consolidation else GROUND_GLASS
        opacity[box] |= blob
        if is_consolidation:
            consolidation[box] |= blob
        covered += int(blob.sum())


def _subpleural_points(label: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless random (z, y, x) points inside the lung, in the outer fifth of its radius."""
    ax, ay, az = LUNG_SEMI_AXES
    cy, cz = LUNG_CENTRE_YZ
    cx = LUNG_CENTRES_X[label]
    while True:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        reach = rng.uniform(0.75, 0.95)
        x, y, z = cx + direction[0] * ax * reach, cy + direction[1] * ay * reach, cz + direction[2] * az * reach
        if _lung_shape(np.float32(z), np.float32(y), np.float32(x), cx):
            yield np.array([z, y, x])


def _render(
    labels: np.ndarray, spacing, noise_hu: float, rng: np.random.Generator, blur: float = 0.6, sharpen: float = 0.0
) -> np.ndarray:
    """Label map -> int16 HU with in-plane partial-volume blur (`blur` voxels), edge enhancement
    (unsharp masking by `sharpen`) and white noise, slice by slice (bounded memory)."""
    hu = np.empty(labels.shape, dtype=np.int16)
    for k in range(labels.shape[0]):
        image = ndimage.gaussian_filter(TISSUE_HU[labels[k]], sigma=blur)
        if sharpen:
            image += sharpen * (image - ndimage.gaussian_filter(image, sigma=2.0 * blur))
        image += rng.normal(0.0, noise_hu, size=image.shape).astype(np.float32)
        hu[k] = np.clip(np.rint(image), -1024, 3071)
    return hu


def write_phantom_series(
    phantom: Phantom,
    out_dir: Path | str,
    *,
    patient_id: str = "PHANTOM",
    patient_name: str = "Phantom^Chest",
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    series_number: int = 1,
) -> list[Path]:
    """Write the phantom as uncompressed CT Image Storage files, one per slice, ordered feet to head."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study_uid = study_instance_uid or generate_uid()
    series_uid = series_instance_uid or generate_uid()
    frame_of_reference_uid = generate_uid()
    now = datetime.now(timezone.utc)
    paths = []
    nz, ny, nx = phantom.hu.shape
    for k in range(nz):
        ds = _ct_slice_header(
            phantom, k, patient_id, patient_name, study_uid, series_uid, frame_of_reference_uid, series_number, now
        )
        ds.PixelData = (phantom.hu[k].astype(np.int32) + 1024).clip(0, 65535).astype("<u2").tobytes()
        path = out / f"CT{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _ct_slice_header(
    phantom: Phantom,
    k: int,
    patient_id: str,
    patient_name: str,
    study_uid: str,
    series_uid: str,
    frame_of_reference_uid: str,
    series_number: int,
    now: datetime,
) -> Dataset:
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = "dicom-node phantom"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Synthetic chest CT phantom"
    ds.SeriesDescription = "Phantom chest"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.BodyPartExamined = "CHEST"
    ds.KVP = "120"
    ds.SliceThickness = f"{phantom.spacing[0]:.4g}"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = k + 1
    oz, oy, ox = phantom.origin
    z = oz + k * phantom.spacing[0]
    ds.ImagePositionPatient = [f"{ox:.4f}", f"{oy:.4f}", f"{z:.4f}"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = f"{z:.4f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = phantom.hu.shape[1:]
    ds.PixelSpacing = [f"{phantom.spacing[1]:.6g}", f"{phantom.spacing[2]:.6g}"]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "-600"
    ds.WindowWidth = "1500"
    return ds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic chest CT phantom as a DICOM series.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--size", type=int, nargs=3, default=(512, 512, 300), metavar=("COLUMNS", "ROWS", "SLICES"))
    parser.add_argument("--opacity", type=float, default=0.1, help="fraction of the lung covered by lesions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--patient-id", default="PHANTOM")
    args = parser.parse_args(argv)
    phantom = make_phantom(tuple(args.size), args.opacity, seed=args.seed)
    paths = write_phantom_series(phantom, args.out_dir, patient_id=args.patient_id)
    print(f"{len(paths)} slices written to {args.out_dir} (opacity {phantom.opacity_percent:.1f}% of the lungs)")


if __name__ == "__main__":
    main()
