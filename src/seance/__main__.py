from seance.cli import main

main()
