"""The colorization library: what the top-level stage scripts share.

colour space and image I/O (colorspace, image_io, atomic_io), the systems registry
(systems) and each system's module (iizuka, zhang, hypercolumn, with the output
spaces of ab_bins and histograms), the custom layers (layers), devices and
precision (devices), training callbacks (callbacks), inference (inference),
metrics (metrics), the per-example encoding of the dataset builder (example_codec)
and the embedded scenes (scenes).
"""
