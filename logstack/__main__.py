from logstack.cli import main

main()
