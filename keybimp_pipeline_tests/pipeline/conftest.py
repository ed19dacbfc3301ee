from __future__ import annotations

import pytest

from keybimp_pipeline.emulators.bimp.app import create_app as bimp_app
from keybimp_pipeline.emulators.keycrm.app import create_app as keycrm_app
from keybimp_pipeline_tests.servers import ServedApp


@pytest.fixture(scope="session")
def emulators():
    keycrm, bimp = ServedApp(keycrm_app()), ServedApp(bimp_app())
    yield keycrm, bimp
    keycrm.stop()
    bimp.stop()
