"""The curator web app (FastAPI)."""
