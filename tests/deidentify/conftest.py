from tests.export.conftest import orthanc_factory  # noqa: F401  (the export tests' Orthanc, stopped by its fixture)
