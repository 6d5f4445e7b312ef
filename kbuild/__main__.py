from kbuild.cli import main

main()
