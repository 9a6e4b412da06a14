"""Task definitions: `clone` (the running revision copied with new images and a deploy's settings,
pure) and `register` (DescribeTaskDefinition and RegisterTaskDefinition, ECS's errors made domain
exceptions). This package imports neither: a caller imports the module it uses.
"""
