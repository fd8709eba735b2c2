"""The data stage: datasets -> uint8 splits (datasets.py, imagefolder.py, images.py), every
split at every severity (corruptions.py)."""
