from chainworker.cli import main

main()
