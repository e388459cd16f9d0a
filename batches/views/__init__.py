"""Thin function views: parse the request, call a service, render. Access goes through access.py."""
