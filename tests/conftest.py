from tests.node_process import node_factory  # noqa: F401  (fixture shared by all test packages)
