"""Docker labels on every replica container, read by the node-agent and the local CLI."""

LABEL_FUNCTION = "dev.shoal.function"
LABEL_REVISION = "dev.shoal.revision"
LABEL_REPLICA = "dev.shoal.replica"
LABEL_NODE = "dev.shoal.node"
LABEL_PORT = "dev.shoal.port"
LABEL_GENERATION = "dev.shoal.node-generation"
