"""The notebook lab: helpers that only the notebooks import (mask studies, layer-wise
features, paper ablations, widgets), kept apart from the Gradio app's modules."""
