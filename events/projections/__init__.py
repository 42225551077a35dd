"""The projections: the one fold of Shoal's history (functions and revisions, replicas with
one lifecycle, nodes, failures), composed in `world.World`."""
