"""Model weights on a worker's disk: where files go, what they are, and how they arrive.

Torch-free and reference-independent: nothing here imports the bus, the manager or a network
client at import time, so a worker can place, verify and identify weight files cheaply.

* `kinds`: component kinds (VAE, text encoders) and the sibling folders component files route to;
* `layout`: the weights root, per-record file paths, presence checks;
* `component_hash`: container-independent content hashes of safetensors components;
* `identity`: per-checkpoint identity sidecars;
* `canonical`: the set of components worth sharing, derived from the reference;
* `annotators`: the ControlNet annotator files and their records;
* `download`: resumable, verified downloads (gateway mirror first, origin after).
"""
