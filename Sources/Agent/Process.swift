import Glibc

func getpidValue() -> Int32 { getpid() }
