from tests.export.conftest import orthanc_factory  # noqa: F401  (the export tests' Orthanc, stopped by its fixture)
from tests.store.conftest import database_url  # noqa: F401  (SQLite, and PostgreSQL when it answers)
from tests.web.conftest import browser  # noqa: F401  (Debian's headless Chromium through Playwright)
