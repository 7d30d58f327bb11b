"""Jinja2 templates (hls/, rtl/, report/), shipped inside the package as codesign.templates."""
