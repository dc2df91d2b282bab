from tests.node_process import node_factory  # noqa: F401  (fixture shared by all test packages)
from tests.processed_node import processed_p001  # noqa: F401  (one node that processed P001, for the whole session)
