"""Webhooks: signed JSON POSTs when a job ends, delivered with retries off the GPU worker's path."""
