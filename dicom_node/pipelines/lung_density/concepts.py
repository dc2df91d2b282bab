"""The coded concepts of the lung-density SEG and SR, beside the shared ones (`output/concepts.py`).

Standard codes where the standard has them:
- the lungs, right and left, volume (SCT 118565006 in mL, method DCM 126030 "Sum of segmented voxel method
  for volume"), the procedure (SCT 169069000 "Computed tomography of chest"): the shared concepts;
- the zones: SCT 281392002 "Upper zone of lung", 281393007 "Middle zone of lung", 281394001 "Lower zone of lung"
  (DICOM CID 6124/6126); here thirds of each lung's head-feet extent, as the COVID-19 pipeline's zones;
- the headline group's finding: SCT 87433001 "Pulmonary emphysema", the condition densitometry quantifies;
- mean lung density: DCM 112181 "Mean Attenuation Coefficient", in UCUM [hnsf'U] (Hounsfield unit).

The DICOM standard's codes (the DCM codes and the SNOMED CT codes of its context groups, as pydicom's code
dictionary lists them) have none for a relative area below a threshold, for the 15th percentile of a density
histogram (only "Fifth percentile" and "Tenth percentile" qualifiers) or for low-attenuation voxels as a
segmented property (only "Mediastinal emphysema", a disorder): those use the node's private scheme
"99DCMNODE" (`output/concepts.py`), declared in the SR, with the threshold and percentile in code and meaning
(a configuration that moves the threshold gets another code, never the same code for another measure).
"""

from __future__ import annotations

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from dicom_node.output.concepts import PRIVATE_SCHEME

PULMONARY_EMPHYSEMA = Code("87433001", "SCT", "Pulmonary emphysema")
LUNG_ZONES = {
    "upper": Code("281392002", "SCT", "Upper zone of lung"),
    "middle": Code("281393007", "SCT", "Middle zone of lung"),
    "lower": Code("281394001", "SCT", "Lower zone of lung"),
}
MEAN_LUNG_DENSITY = codes.DCM.MeanAttenuationCoefficient
HOUNSFIELD_UNIT = codes.UCUM.HounsfieldUnit
LOW_ATTENUATION_VOLUME = Code("LAAVOL", PRIVATE_SCHEME, "Low attenuation lung volume")


def relative_area(threshold_hu: int) -> Code:
    """RA-950 for -950: "Relative area below -950 HU" (code "RA950")."""
    return Code(f"RA{abs(threshold_hu)}", PRIVATE_SCHEME, f"Relative area below {threshold_hu} HU")


def percentile_density(percentile: float) -> Code:
    """Perc15 for 15: "15th percentile of lung attenuation" (code "PERC15")."""
    number = f"{percentile:g}"
    suffix = "th" if number.endswith(("11", "12", "13")) else {"1": "st", "2": "nd", "3": "rd"}.get(number[-1], "th")
    return Code(f"PERC{number.replace('.', 'P')}", PRIVATE_SCHEME, f"{number}{suffix} percentile of lung attenuation")


def low_attenuation(threshold_hu: int) -> Code:
    """The SEG's low-attenuation segment as a segmented property: "Lung below -950 HU" (code "LAA950")."""
    return Code(f"LAA{abs(threshold_hu)}", PRIVATE_SCHEME, f"Lung below {threshold_hu} HU")
