from snapasset.cli import main

main()
