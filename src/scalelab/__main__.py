from scalelab.cli import program

program()
