"""Contract-test fixtures: each vendor's helpers live in their own module and are imported here."""

from keybimp_pipeline_tests.bimp_fixtures import *
from keybimp_pipeline_tests.keycrm_fixtures import *
