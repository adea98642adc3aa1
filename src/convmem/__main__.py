from convmem.cli import app

app()
