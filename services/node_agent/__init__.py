"""The node-agent: carries out its node's commands on the local runtime and reports truth."""
