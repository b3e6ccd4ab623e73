from clearance.app.cli import app

app()
