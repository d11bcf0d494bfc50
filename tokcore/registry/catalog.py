"""Components of tokcore's first-party plugins, so that a config naming one whose plugin is
not installed gets `pip install tok-...` instead of "unknown". A test keeps this table equal
to the plugins' own entry points."""

FIRST_PARTY: dict[tuple[str, str], str] = {
    ("baseline", "bicubic"): "tok-rgb",
    ("baseline", "grid"): "tok-depth",
    ("baseline", "h264"): "tok-rgb",
    ("baseline", "jpeg"): "tok-rgb",
    ("dataset", "camera_files"): "tok-camera",
    ("dataset", "camera_synthetic"): "tok-camera",
    ("dataset", "depth_files"): "tok-depth",
    ("dataset", "depth_motorcycle"): "tok-depth",
    ("dataset", "depth_video_files"): "tok-depth",
    ("dataset", "gaze_files"): "tok-gaze",
    ("dataset", "gaze_synthetic"): "tok-gaze",
    ("dataset", "image_folder"): "tok-rgb",
    ("dataset", "image_shards"): "tok-rgb",
    ("dataset", "video_files"): "tok-rgb",
    ("dataset", "text_corpus"): "tok-text",
    ("dataset", "text_files"): "tok-text",
    ("decoder", "controlnet"): "tok-rgb",
    ("decoder", "divae"): "tok-rgb",
    ("decoder", "cosmos"): "tok-rgb",
    ("encoder", "cosmos"): "tok-rgb",
    ("decoder", "cosmos_image"): "tok-rgb",
    ("encoder", "cosmos_image"): "tok-rgb",
    ("importer", "cosmos"): "tok-rgb",
    ("importer", "dalle"): "tok-rgb",
    ("importer", "4m"): "tok-rgb",
    ("encoder", "fourm_vit"): "tok-rgb",
    ("decoder", "fourm_vit"): "tok-rgb",
    ("encoder", "dalle"): "tok-rgb",
    ("decoder", "dalle"): "tok-rgb",
    ("quantizer", "cosmos_fsq"): "tok-rgb",
    ("dataset", "skimage_photos"): "tok-rgb",
    ("decoder", "triplane"): "tok-coordtok",
    ("encoder", "coordtok"): "tok-coordtok",
    ("decoder", "wordpiece"): "tok-text",
    ("encoder", "wordpiece"): "tok-text",
    ("loss", "camera_pose"): "tok-camera",
    ("loss", "perceptual"): "tok-rgb",
    ("modality", "camera"): "tok-camera",
    ("modality", "depth"): "tok-depth",
    ("modality", "depth_video"): "tok-depth",
    ("modality", "gaze"): "tok-gaze",
    ("modality", "rgb"): "tok-rgb",
    ("modality", "text"): "tok-text",
    ("modality", "video"): "tok-rgb",
    ("trainer", "coordtok"): "tok-coordtok",
    ("trainer", "wordpiece"): "tok-text",
    ("trainer", "diffusion"): "tok-rgb",
    ("trainer", "vqgan"): "tok-rgb",
}

# Renamed first-party components, `(kind, old name): new name`. Every tokenizer.json records
# the registry names it was built from, so a rename adds its old name here (as timm's
# `register_model_deprecations` does) and saved runs keep loading, with a warning.
# Third-party plugins declare theirs through the hook `tokcore_register_aliases`.
RENAMED: dict[tuple[str, str], str] = {}
