from services.autoscaler.service import main

main()
