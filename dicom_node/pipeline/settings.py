"""Tunable parameters of the image pipeline, with the defaults the tests and benchmark use.

They are pydantic models so that the node's configuration can nest them and validate
values read from a file or the environment; the pipeline functions only read them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class SelectionRules(BaseModel, frozen=True):
    """Which series the COVID-19 pipeline accepts (anything else is skipped, not failed)."""

    modality: str = "CT"
    sop_classes: tuple[str, ...] = Field(
        (
            "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
            "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage (skipped with the reason: multi-frame)
            "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT Image Storage (likewise)
        ),
        description="storage SOP classes whose instances start a job; the node stores every other class without processing it",
    )
    min_slices: int = Field(20, ge=2, description="fewer slices than this cannot cover both lungs")
    max_axial_deviation_deg: float = Field(
        10.0, ge=0, description="largest angle between the slice normal and the patient's head-feet axis"
    )


class LoadRules(BaseModel, frozen=True):
    """Geometry checks made while stacking slices into a volume."""

    max_missing_slices: int = Field(
        0, ge=0, description="slices missing from a regular stack that are filled by interpolation; more rejects"
    )
    spacing_tolerance: float = Field(
        0.1, gt=0, lt=0.5, description="relative deviation of a slice gap from the median gap still taken as regular"
    )
    max_stack_tilt_deg: float = Field(
        0.5, ge=0, description="largest angle between the slice normal and the line through the slice positions"
    )
    orientation_tolerance: float = Field(1e-3, gt=0, description="largest cosine difference between slices")
    decode_threads: int = Field(2, ge=1)
    # Limits on the volume a series may become, checked on the headers before anything is decoded: with them
    # (and SegmentationSettings.max_grid_voxels) a job stays within the memory budget stated in docs/pipeline.md.
    max_rows_columns: int = Field(1024, ge=16, description="largest Rows or Columns of a CT image")
    max_field_of_view_mm: float = Field(
        700.0, gt=0, description="largest in-plane extent (Columns or Rows x PixelSpacing); a CT bore is at most ~80 cm"
    )
    max_scan_length_mm: float = Field(1500.0, gt=0, description="largest distance covered by the slices (head to feet)")
    max_voxels: int = Field(
        300_000_000, ge=1, description="largest native volume (columns x rows x slices, including filled gaps): 2 bytes each"
    )


class SegmentationSettings(BaseModel, frozen=True):
    """The grid the lung model works on, and the HU window it receives (Clara's AH-Net: [-1500, 500])."""

    grid_spacing_zyx: tuple[float, float, float] = (2.5, 1.6, 1.6)
    clip_hu: tuple[float, float] = (-1500.0, 500.0)
    max_grid_voxels: int = Field(
        90_000_000, ge=1, description="largest model grid (about 16 bytes each while segmenting and quantifying)"
    )


class ClassifierInputSettings(BaseModel, frozen=True):
    """Clara `classification_covid-19_v1` input: lung bounding box resized to 192x192x64 (x, y, z)."""

    size_xyz: tuple[int, int, int] = (192, 192, 64)
    margin_mm: float = Field(10.0, ge=0, description="added around the lung mask's bounding box")
    window_hu: tuple[float, float] = Field(
        (-1000.0, 500.0), description="HU range mapped linearly onto output_range, values outside are clipped"
    )
    output_range: tuple[float, float] = (0.0, 1.0)
    fill_hu: float | None = Field(
        -1000.0, description="HU given to voxels outside the lung mask; None keeps the CT (MONAI release)"
    )
    layout: tuple[str, ...] = Field(
        ("N", "C", "X", "Y", "Z"), description="axis order of the tensor; default shape [1, 1, 192, 192, 64]"
    )


class HarmonisationSettings(BaseModel, frozen=True):
    """The reference resolution and noise every scan is brought to before opacity is measured (`harmonise.py`).

    The reference lies in the middle of the range where the filters hold on the shared scans (edge spread
    3.0-3.8 mm measured, `docs/validation.md`); Siemens D40s (P001, normal001) measures 2.0 mm on the model
    grid and gets about 1.2 mm of smoothing.
    """

    enabled: bool = Field(True, description="false: a fixed 1 mm Gaussian instead (the baseline classifier's filters)")
    reference_edge_spread_mm: float = Field(
        3.5, gt=0, description="10-90% width of an air / soft-tissue edge on the model grid that every scan is smoothed to"
    )
    reference_noise_hu: float = Field(
        15.0, gt=0, description="fine-scale noise of the lung parenchyma that every scan is smoothed to"
    )
    max_smoothing_mm: float = Field(
        2.0, ge=0, description="largest in-plane Gaussian (sigma) applied; a noisier scan is flagged instead of blurred further"
    )
    noise_tolerance: float = Field(
        0.25, ge=0, description="relative excess over reference_noise_hu still counted as harmonised"
    )
    resolution_tolerance: float = Field(
        0.15, ge=0, description="relative excess of a scan's own edge spread over the reference still counted as harmonised"
    )
    very_low_dose_noise_hu: float = Field(
        30.0, gt=0, description="noise at the reference resolution above which the scan is flagged as very low dose"
    )


class OpacitySettings(BaseModel, frozen=True):
    """HU ranges and size filters of the opacity quantification (see `opacity.py`)."""

    opacity_hu: tuple[float, float] = Field((-700.0, 100.0), description="ground-glass and consolidation")
    high_opacity_hu: tuple[float, float] = Field((-200.0, 100.0), description="consolidation (PHO)")
    pleural_margin_mm: float = Field(
        3.0, ge=0, description="rim of the lung mask where partial volume with the chest wall is not counted"
    )
    vessel_radius_mm: float = Field(5.0, gt=0, description="dense (consolidation-range) tubes thinner than this are vessels")
    vessel_shell_mm: float = Field(
        3.0, ge=0, description="ground-glass-range voxels this close to a vessel are its partial volume"
    )
    ground_glass_opening_mm: float = Field(
        3.0, gt=0, description="ground-glass-range structures thinner than this are vessel and airway-wall partial volume"
    )
    min_lesion_ml: float = Field(
        2.0, ge=0, description="smaller opacity components (about 1.5 cm across) are ignored as vessel knots and noise"
    )
    tubular_scales_mm: tuple[float, ...] = Field(
        (2.0, 3.5, 5.0), description="Gaussian scales of the Hessian vesselness test of opacity components (vessel radii)"
    )
    tubular_vesselness: float = Field(0.3, ge=0, le=1, description="Frangi vesselness above which a voxel is tubular")
    tubular_max_fraction: float = Field(
        1.0,
        ge=0,
        le=1,
        description="components with a larger tubular share are vessels and dropped; 1 (the default) disables the test: "
        "it drops subpleural and round consolidations of 4-19 mL and no false positive of the shared scans "
        "(docs/validation.md, 'The tubular test')",
    )
    tubular_max_lesion_ml: float = Field(
        10.0, ge=0, description="larger components are lesions without the tubular test (no vessel segment is that big)"
    )
    focal_excess_hu: float | None = Field(
        150.0, description="lesion-scale mean attenuation above the scan's parenchyma that makes faint focal ground glass "
        "a seed below min_lesion_ml; None disables"
    )
    focal_scale_mm: float = Field(3.0, gt=0, description="Gaussian scale of that local mean (a lesion of about 1 cm)")
    focal_min_ml: float = Field(0.3, ge=0, description="smallest focal ground-glass seed (about 8 mm across)")
    focal_max_vessel_contact: float = Field(
        0.02, ge=0, le=1, description="focal seeds with a larger share of voxels next to a vessel shell are vessel sleeves"
    )
    grow_along_z_mm: float = Field(
        2.5, ge=0, description="how far seeds grow back along z (in-plane: pleural_margin_mm + ground_glass_opening_mm)"
    )
    grow_uphill_hu: float | None = Field(
        50.0,
        ge=0,
        description="seeds grow only into voxels at most this much brighter than the brightest grown voxel beside them "
        "(a lesion's edge falls away from it, a vessel beside it rises again: about 3x the reference noise); None: "
        "grow into every candidate",
    )
    growth_stop_hu: float | None = Field(
        75.0,
        gt=0,
        description="the growth does not enter thin bright structures in the ground-glass range: voxels more than this "
        "above the image's grey-level opening by a ball growth_stop_width_mm across (vessels, fissures and "
        "partial-volume bands beside a lesion); None: grow into them (docs/validation.md, 'Growth stops at thin bright "
        "structures')",
    )
    growth_stop_width_mm: float = Field(
        10.0, gt=0, description="structures narrower than this ball (diameter) are thin (the growth stop and the hazy seeds)"
    )
    hazy_seed_stop_hu: float | None = Field(
        400.0,
        gt=0,
        description="hazy (ground-glass range) seeds leave out voxels more than this above the same opening: a knot of "
        "vessels whose cores partial volume took below the dense range, so they have no vessel shell, is thin and far "
        "brighter than its surroundings, while faint ground glass is not; None: keep them (docs/validation.md, "
        "'Calibration offsets')",
    )
    harmonisation: HarmonisationSettings = HarmonisationSettings()


class FitnessRules(BaseModel, frozen=True):
    """Limits of the range the method was validated in; a scan beyond one gets a fitness flag (see `fitness.py`)."""

    max_slice_thickness_mm: float = Field(
        3.0, gt=0, description="thicker slices blur vessels into ground glass and small lesions out of it"
    )
    max_vessel_core_hu: float = Field(
        100.0, description="90th percentile of the large lung vessels' cores above which contrast medium is reported "
        "(42-64 HU measured without contrast, 154 HU with)"
    )
    max_end_slice_lung_percent: float = Field(
        1.0, ge=0, le=100, description="lung on the first or last slice, as a share of the largest lung cross-section, "
        "above which the lungs are not fully covered"
    )
    max_dark_streak_percent: float = Field(
        0.5, ge=0, le=100, description="share of the lung darker than -1050 HU (3 x 3 mean) above which streaks are reported"
    )
    max_mediastinal_contact_cm2: float = Field(
        4.0, gt=0, description="area over which opacity may meet the mediastinum before its extent there is reported as "
        "unseen (0-1.2 cm2 on the shared scans and their variants without a lesion there, 8.7-8.8 cm2 with A0002's mass)"
    )


class ProcessingSettings(BaseModel, frozen=True):
    """What every pipeline's `[pipelines.NAME.processing]` table has: which series it takes and how it stacks them
    (the worker, the job scheduler and the viewer read these two without knowing the pipeline)."""

    selection: SelectionRules = SelectionRules()
    load: LoadRules = LoadRules()


class PipelineSettings(ProcessingSettings, frozen=True):
    """The COVID-19 pipeline's processing table."""

    segmentation: SegmentationSettings = SegmentationSettings()
    classifier_input: ClassifierInputSettings = ClassifierInputSettings()
    opacity: OpacitySettings = OpacitySettings()
    fitness: FitnessRules = FitnessRules()
