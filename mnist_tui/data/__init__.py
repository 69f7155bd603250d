"""The datasets: files and checksums (files), splits (splits), device tensors (device),
per-image augmentation on the device (augment). Imports torch.
"""
