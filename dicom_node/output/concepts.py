"""The coded concepts the SEG and SR use, chosen once so both objects agree.

Standard codes where a standard code exists:
- Lung: SCT 39607008 "Lung", with the laterality modifier SCT 24028007 "Right"
  or SCT 7771000 "Left" (DICOM CID 7151 + CID 244, the pattern dcmqi and
  TotalSegmentator's DICOM output use), category SCT 91723000 "Anatomical Structure".
- Opacity: DCM 112001 "Opacity" (CID 6102/6104, chest radiography/CT findings),
  category SCT 49755003 "Morphologically Abnormal Structure".  The mask holds
  ground-glass opacity and consolidation alike, so the general "Opacity" is
  the honest code, not DCM 112120 "Ground glass opacity".
- Volume: SCT 118565006 "Volume" in UCUM "mL", method DCM 126030 "Sum of
  segmented voxel method for volume".
- Procedure: SCT 169069000 "Computed tomography of chest".
- COVID-19: SCT 840539006 "Disease caused by severe acute respiratory
  syndrome coronavirus 2".

PO, PHO ("percentage of opacity", "percentage of high opacity", Chaganti et
al., Radiology: AI 2020), the opacity volume inside one lung, the classifier's
scores (a trained model's probabilities, the baseline's index), the opacity
pattern, the zone-based CT severity score, the RSNA reporting category
(Simpson et al. 2020) with its four values and its criteria, and the fitness
flags have no standard code (neither SNOMED CT nor DCM codes the RSNA
categories); criteria are "RC" + the criterion's key, flags their own code; they use the private coding scheme
"99DCMNODE" (private designators start with "99", PS3.3 8.2), which the SR
declares in its Coding Scheme Identification Sequence.
"""

from __future__ import annotations

from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from dicom_node.output.uids import MANUFACTURER

PRIVATE_SCHEME = "99DCMNODE"

LUNG = codes.SCT.Lung
RIGHT = codes.SCT.Right
LEFT = codes.SCT.Left
RIGHT_AND_LEFT = codes.SCT.RightAndLeft
ANATOMICAL_STRUCTURE = codes.SCT.AnatomicalStructure
OPACITY = codes.DCM.Opacity
MORPHOLOGICALLY_ABNORMAL_STRUCTURE = codes.SCT.MorphologicallyAbnormalStructure
VOLUME = codes.SCT.Volume
SUM_OF_SEGMENTED_VOXELS = codes.DCM.SumOfSegmentedVoxelMethodForVolume
CT_OF_CHEST = Code("169069000", "SCT", "Computed tomography of chest")
# The fully specified name exceeds the 64 characters of Code Meaning; "COVID-19" is its SNOMED synonym.
COVID_19 = Code("840539006", "SCT", "COVID-19")
COMMENT = codes.DCM.Comment

MILLILITER = Code("mL", "UCUM", "milliliter")
PERCENT = codes.UCUM.Percent
NO_UNITS = codes.UCUM.NoUnits

OPACITY_VOLUME = Code("OPVOL", PRIVATE_SCHEME, "Opacity volume")
PERCENT_OPACITY = Code("PO", PRIVATE_SCHEME, "Percentage of opacity")
PERCENT_HIGH_OPACITY = Code("PHO", PRIVATE_SCHEME, "Percentage of high opacity")

# The opacity pattern (pipelines/covid19/pattern.py): private codes, none of these has a standard code.
OPACITY_PATTERN = Code("OPPAT", PRIVATE_SCHEME, "Opacity pattern")
BILATERAL_OPACITY = Code("OPBIL", PRIVATE_SCHEME, "Bilateral opacity")
YES, NO = codes.SCT.Yes, codes.SCT.No
PERIPHERAL_SHARE = Code("OPPERI", PRIVATE_SCHEME, "Opacity share in the outer third of the lungs")
ZONE_SHARE = {
    zone: Code(f"OPZ{zone[0].upper()}", PRIVATE_SCHEME, f"Opacity share in the {zone} lung zones")
    for zone in ("upper", "middle", "lower")
}
CONSOLIDATION_SHARE = Code("OPCONS", PRIVATE_SCHEME, "Consolidation share of opacity")
GROUND_GLASS_SHARE = Code("OPGGO", PRIVATE_SCHEME, "Ground-glass share of opacity")
LESION_COUNT = Code("OPNLES", PRIVATE_SCHEME, "Number of opacity lesions")
LARGEST_LESION_VOLUME = Code("OPLLES", PRIVATE_SCHEME, "Largest opacity lesion volume")
ZONE_BASED_SEVERITY_SCORE = Code("CTSSZ", PRIVATE_SCHEME, "Zone-based CT severity score")


def zone_severity_score(zone_key: str) -> Code:
    """The private code for one zone's score ("right upper" -> "Zone-based CT severity score, right upper zone")."""
    side, zone = zone_key.split()
    return Code(f"CTSSZ{side[0].upper()}{zone[0].upper()}", PRIVATE_SCHEME, f"Zone-based CT severity score, {zone_key} zone")

# Said in plain words wherever the baseline classifier's scores are shown.
BASELINE_NOTE = "explainable baseline, not a trained model: its index is not a probability"

# The RSNA expert-consensus category (pipelines/covid19/category.py) and whether the scan is within the validated range.
RSNA_CATEGORY = Code("RSNACAT", PRIVATE_SCHEME, "RSNA chest CT category for COVID-19 pneumonia")
RSNA_CATEGORY_VALUES = {
    "typical": Code("RSNATYP", PRIVATE_SCHEME, "Typical appearance"),
    "indeterminate": Code("RSNAIND", PRIVATE_SCHEME, "Indeterminate appearance"),
    "atypical": Code("RSNAATY", PRIVATE_SCHEME, "Atypical appearance"),
    "negative": Code("RSNANEG", PRIVATE_SCHEME, "Negative for pneumonia"),
}
WITHIN_VALIDATED_RANGE = Code("FITVALID", PRIVATE_SCHEME, "Scan within the method's validated range")
FITNESS = Code("FITNESS", PRIVATE_SCHEME, "Fitness of the scan for the method")


def criterion(code: str, title: str) -> Code:
    """The private code of one category criterion ("BILATERAL" -> "RCBILATERAL")."""
    return Code(f"RC{code}", PRIVATE_SCHEME, title)


def fitness_flag(code: str, title: str) -> Code:
    """The private code of one fitness flag: its own code (`pipeline/fitness.py`)."""
    return Code(code, PRIVATE_SCHEME, title)


def score_of(class_name: str, class_index: int, baseline: bool) -> Code:
    """The private code for one classifier output: "Probability of <class>", or for the baseline its index."""
    if baseline:
        return Code(f"BIDX{class_index}", PRIVATE_SCHEME, f"Baseline index for {class_name} (not a probability)")
    return Code(f"PROB{class_index}", PRIVATE_SCHEME, f"Probability of {class_name}")


def private_coding_scheme() -> CodingSchemeIdentificationItem:
    """The declaration of the private scheme, required wherever its codes are used."""
    return CodingSchemeIdentificationItem(
        designator=PRIVATE_SCHEME,
        name="dicom-node private concepts",
        responsible_organization=MANUFACTURER,
    )
