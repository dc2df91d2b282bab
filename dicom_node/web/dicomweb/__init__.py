"""DICOMweb under /dicomweb (PS3.18): QIDO-RS searches, WADO-RS retrieval, STOW-RS storage."""

from fastapi import APIRouter

from dicom_node.web.dicomweb import qido, stow, wado

router = APIRouter(prefix="/dicomweb", tags=["DICOMweb"])
router.include_router(qido.router)
router.include_router(wado.router)
router.include_router(stow.router)
