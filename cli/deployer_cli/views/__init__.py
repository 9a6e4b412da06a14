"""What `deployer status`, `status --watch` and `report` compute from the release table and draw:
read-only views of the releases, never a transition."""
