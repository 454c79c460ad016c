"""Retrieval evaluation on BEIR-layout data sets (`ragbot eval`)."""
