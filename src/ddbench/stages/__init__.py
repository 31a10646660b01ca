"""The shared, IPC-independent stages: teachers, training dynamics and the scores computed
from them, features, teacher-scored crops, diffusion priors, ddps patch scores and clusters,
psr pools. Each writes one target that every IPC and seed reuses."""
