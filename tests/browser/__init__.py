"""Browser tests: the lessons in JupyterLab and Notebook 7, in headless Chromium."""
