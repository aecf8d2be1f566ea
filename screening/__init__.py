"""Screening: features, classifier, active-learning order, simulation, curator web app."""
