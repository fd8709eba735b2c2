"""The store stage: the frozen models' outputs, built once per content hash (build.py), written
and read as .npy parts with a sha256 manifest (io.py), mirrored to shared storage (mirror.py)."""
