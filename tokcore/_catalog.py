"""Components of tokcore's first-party plugins, so that a config naming one whose plugin is
not installed gets `pip install tok-...` instead of "unknown". A test keeps this table equal
to the plugins' own entry points."""

FIRST_PARTY: dict[tuple[str, str], str] = {
    ("decoder", "triplane"): "tok-coordtok",
    ("modality", "camera"): "tok-camera",
    ("modality", "depth"): "tok-depth",
    ("modality", "gaze"): "tok-gaze",
    ("modality", "rgb"): "tok-rgb",
    ("modality", "text"): "tok-text",
    ("modality", "video"): "tok-rgb",
}
