"""The V-JEPA workbench: a Gradio app (`python -m workbench`) and notebook helpers.

Tabs: Predict (paint a mask, see the decoded prediction and the per-frame surprise), Features
(PCA of patch features as colours), Embeddings (2-D map of clip features), Train (a teaching
run in a child process, followed live), Model (which bundle is in use and where it came from).

Notebook-facing helpers return plain numpy arrays and plotly figures:
`workbench.plots`, `workbench.maps`, `workbench.features`, `workbench.frames`; helpers that only
the notebooks use live in `workbench.lab`.
"""
