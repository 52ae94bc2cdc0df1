"""dldna: helper package for chapter 10 of Deep Learning DNA."""

import warnings

__version__ = "1.0.0.dev0"

# transformers imports tqdm.auto, which warns inside Jupyter when ipywidgets is missing;
# the plain-text progress bars it falls back to are fine, so the warning is only noise.
warnings.filterwarnings("ignore", message="IProgress not found")
