from convmem.cli import app

if __name__ == "__main__":  # not when a spawned process (an import builder) imports it
    app()
