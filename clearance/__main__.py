from clearance.cli import app

app()
