"""Components of tokcore's first-party plugins, so that a config naming one whose plugin is
not installed gets `pip install tok-...` instead of "unknown". A test keeps this table equal
to the plugins' own entry points."""

FIRST_PARTY: dict[tuple[str, str], str] = {
    ("dataset", "camera_files"): "tok-camera",
    ("dataset", "camera_synthetic"): "tok-camera",
    ("dataset", "gaze_files"): "tok-gaze",
    ("dataset", "gaze_synthetic"): "tok-gaze",
    ("dataset", "skimage_photos"): "tok-rgb",
    ("decoder", "triplane"): "tok-coordtok",
    ("loss", "camera_pose"): "tok-camera",
    ("loss", "perceptual"): "tok-rgb",
    ("modality", "camera"): "tok-camera",
    ("modality", "depth"): "tok-depth",
    ("modality", "gaze"): "tok-gaze",
    ("modality", "rgb"): "tok-rgb",
    ("modality", "text"): "tok-text",
    ("modality", "video"): "tok-rgb",
}
