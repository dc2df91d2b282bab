"""The OHIF viewer under /ohif/: its prebuilt files (installed by `make`, see deploy/ohif/install.sh) and an app
configuration pointing at the node's own DICOMweb.

The files hold no patient data and are served like the node's other pages; the
viewer reads the studies from /dicomweb with the browser's session cookie
(`session.py`): its link carries no credential.
Everything the viewer loads comes from this server: no fonts, scripts or
telemetry from elsewhere. Paths that are not files are the viewer's own routes
(`/ohif/viewer?StudyInstanceUIDs=...`) and get its index.html.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response

from dicom_node.web.security_headers import STATIC_FILE

router = APIRouter(prefix="/ohif", include_in_schema=False)


def app_config(dicomweb_root: str) -> str:
    """window.config for OHIF: one DICOMweb data source, the node's; nothing that reaches another host."""
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "dicom-node",
        "configuration": {
            "friendlyName": "dicom-node",
            "name": "dicom-node",
            "wadoUriRoot": dicomweb_root,
            "qidoRoot": dicomweb_root,
            "wadoRoot": dicomweb_root,
            "qidoSupportsIncludeField": True,
            "supportsReject": False,
            "supportsStow": False,
            "imageRendering": "wadors",
            "thumbnailRendering": "wadors",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": True,
            "supportsWildcard": True,
            "staticWado": False,
            "singlepart": False,
            "omitQuotationForMultipartRequest": True,
            "bulkDataURI": {"enabled": True},
        },
    }
    config = {
        "routerBasename": "/ohif",
        "showStudyList": True,
        "maxNumberOfWebWorkers": 2,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "investigationalUseDialog": {"option": "never"},
        # The node's SEG is what the viewer is opened for: load it over the CT when its thumbnail is opened, without
        # OHIF's "Do you want to open this Segmentation?" question.
        "disableConfirmationPrompts": True,
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "defaultDataSourceName": "dicom-node",
        "dataSources": [source],
    }
    return f"window.config = {json.dumps(config, indent=2)};\n{LUNG_WINDOW_PROTOCOL}"


# When the viewer's mode is entered, OHIF's default hanging protocol is given the lung window (W1500/L-600, as the
# node's own viewer and key images) for the display sets it places: OHIF would take the first window of the CT's
# headers, often a soft-tissue one (P001: WINDOW1 W350/L50; its lung window is WINDOW2). OHIF registers hanging
# protocols only from extensions, and a protocol added when the mode is entered comes too late for the route (it
# looks the id up first), so the default one is changed in place; a mode's configuration (`modesConfiguration`,
# applied with immutability-helper) is the one way in from the app configuration, hence a function, not JSON.
LUNG_WINDOW_PROTOCOL = """
window.config.modesConfiguration = {
  "@ohif/mode-longitudinal": {
    onModeEnter: {
      $apply: (enter) => function (args) {
        const entered = enter.apply(this, arguments);
        const lung = { windowWidth: 1500, windowCenter: -600 };
        const protocol = args.servicesManager.services.hangingProtocolService.getProtocolById("default");
        for (const stage of protocol.stages) {
          for (const viewport of stage.viewports) {
            for (const set of viewport.displaySets) {
              set.options = { ...(set.options || {}), voi: lung };
            }
          }
        }
        return entered;
      },
    },
  },
};
"""


def ohif_dir(request: Request) -> Path:
    directory = Path(request.app.state.context.config.http.ohif_dir).resolve()
    if not (directory / "index.html").is_file():
        raise HTTPException(404, f"the OHIF viewer is not installed in {directory} (run `make ohif`)")
    return directory


@router.get("/app-config.js")
def ohif_config(request: Request) -> Response:
    """The viewer's configuration; 404 while the viewer is not installed, which is how the list page knows to link it."""
    ohif_dir(request)
    return Response(app_config(f"{str(request.base_url).rstrip('/')}/dicomweb"), media_type="text/javascript")


@router.get("/{path:path}")
def ohif_file(path: str, request: Request) -> FileResponse:
    root = ohif_dir(request)
    target = (root / path).resolve()
    if path and target.is_relative_to(root) and target.is_file() and target.name != "index.html":
        return FileResponse(target, headers={"Cache-Control": STATIC_FILE})
    return FileResponse(root / "index.html")  # its URL names a study: not kept (no-store, the default)
