"""Running Shoal's parts on one machine: the Kafka broker and the service processes."""
