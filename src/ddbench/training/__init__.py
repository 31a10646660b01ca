"""Training: the one engine every protocol runs on, optimisers, augmentation, models, the
protocol presets, and the evaluation of a condensed set under a protocol."""
