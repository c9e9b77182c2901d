"""falcorules-ci."""
