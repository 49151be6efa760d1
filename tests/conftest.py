"""Shared test set-up: this folder is on sys.path, so helpers such as moto_s3 import by name."""
