from services.healer.service import main

main()
