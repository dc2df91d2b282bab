from tests.node_process import node_factory, stop_the_nodes_a_test_left_running  # noqa: F401  (fixtures shared by all test packages)
from tests.processed_node import processed_p001  # noqa: F401  (one node that processed P001, for the whole session)
