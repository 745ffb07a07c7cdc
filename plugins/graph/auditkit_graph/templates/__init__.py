"""Report partials (Jinja) of the plugin probes, loaded by the HTML report (contract D)."""
