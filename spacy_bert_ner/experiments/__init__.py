"""Experiments run as project workflows: continual learning (`continual_data` prepares the
data, `continual` teaches a trained pipeline a new type three ways and scores them)."""
